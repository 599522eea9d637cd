import { startConsulAgent } from '/work/wt/pending/test/support/consul.ts';
import { startEtcd } from '/work/wt/pending/test/support/etcd.ts';
import { EtcdClient } from '@proxyless/etcd';
const agent = await startConsulAgent(); const etcd = await startEtcd();
await fetch(`${agent.httpUrl}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ Name: 'hello', ID: 'hello-1', Address: '127.0.0.1', Port: 18778 }) });
const admin = new EtcdClient({ endpoints: etcd.clientUrl }, {}); await admin.put('/proxyless/services/hello/hello-1', JSON.stringify({ address: '127.0.0.1', port: 18778 })); await admin.close();
console.log(`CONSUL=${agent.httpAddr} ETCD=${etcd.clientUrl}`);
await new Promise(()=>{}); 
