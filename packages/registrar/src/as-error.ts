/** Makes sure what an 'error' event carries is an Error. @internal */
export function asError(error: unknown): Error {
  if (error instanceof Error) return error;
  return new Error(String(error));
}
