/** A minimal DNS query over UDP for tests (independent of the SDK's resolver). */
import { createSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import * as dnsPacket from 'dns-packet';

/** Sends one query (with EDNS0) and returns the decoded answer packet. */
export async function queryDns(
  server: { host: string; port: number },
  name: string,
  type: dnsPacket.RecordType,
  timeoutMs = 2000,
): Promise<dnsPacket.Packet> {
  const socket = createSocket('udp4');
  const id = randomInt(0, 65536);
  const query = dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as dnsPacket.Answer],
  });
  try {
    return await new Promise<dnsPacket.Packet>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`DNS query ${name} ${type} timed out`)), timeoutMs);
      socket.on('error', reject);
      socket.on('message', (msg) => {
        const packet = dnsPacket.decode(msg);
        if (packet.id !== id) return;
        clearTimeout(timer);
        resolve(packet);
      });
      socket.send(query, server.port, server.host);
    });
  } finally {
    socket.close();
  }
}
