// An independent CodeBeaker client in Node.js, built only from the .proto
// contract: lists runtimes, executes, and streams, then prints one JSON report.
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const [address, protoRoot] = process.argv.slice(2);
const definition = loader.loadSync('codebeaker/v1/execution.proto', {
  includeDirs: [protoRoot],
  keepCase: true,
  enums: String,
  longs: Number,
  defaults: true,
  oneofs: true,
});
const { ExecutionService } = grpc.loadPackageDefinition(definition).codebeaker.v1;
const client = new ExecutionService(address, grpc.credentials.createInsecure());

function call(method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

function stream(request) {
  return new Promise((resolve, reject) => {
    const events = [];
    const call = client.ExecuteStream(request);
    call.on('data', (event) => events.push(event));
    call.on('error', reject);
    call.on('end', () => resolve(events));
  });
}

async function main() {
  const runtimes = await call('ListRuntimes', {});
  const executed = await call('Execute', {
    spec: { language: 'python', source: Buffer.from('print(input() * 2)'), stdin: Buffer.from('ab\n') },
  });
  const events = await stream({
    spec: { language: 'js', source: Buffer.from('console.log("streamed")') },
  });
  const report = {
    languages: runtimes.runtimes.map((r) => r.language).sort(),
    execute: { status: executed.result.status, stdout: executed.result.stdout.toString() },
    stream: {
      kinds: events.map((e) => e.event),
      sequences: events.map((e) => e.sequence),
      stdout: events.filter((e) => e.event === 'output').map((e) => e.output.data.toString()).join(''),
      status: events[events.length - 1].result.status,
    },
  };
  console.log(JSON.stringify(report));
  client.close();
}

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
