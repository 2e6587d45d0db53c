// An independent CodeBeaker client in Node.js, built only from the .proto
// contract: lists runtimes, executes, streams, and decodes a refused request's
// google.rpc.Status details (from the standard google/rpc protos), then prints
// one JSON report.
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const [address, protoRoot, depsRoot, googleRoot] = process.argv.slice(2);
const definition = loader.loadSync('codebeaker/v1/execution.proto', {
  includeDirs: [protoRoot, depsRoot],
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

// google.rpc.Status and its detail messages; google/protobuf/* come bundled with protobufjs.
const rpcTypes = new protobuf.Root();
rpcTypes.resolvePath = (origin, target) => path.join(googleRoot, target);
rpcTypes.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });

function richStatus(error) {
  const [trailer] = error.metadata.get('grpc-status-details-bin');
  if (trailer === undefined) return null;
  const status = rpcTypes.lookupType('google.rpc.Status').decode(trailer);
  const details = status.details.map((any) => {
    const type = rpcTypes.lookupType(any.type_url.slice(any.type_url.lastIndexOf('/') + 1));
    return { type: type.fullName.replace(/^\./, ''), ...type.toObject(type.decode(any.value)) };
  });
  return { code: status.code, message: status.message, details };
}

async function refused(request) {
  try {
    await call('Execute', request);
  } catch (error) {
    return { code: error.code, details: error.details, status: richStatus(error) };
  }
  throw new Error('the server ran a request it should have refused');
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
  const invalid = await refused({
    spec: { language: 'python', files: [{ path: '../escape.py', content: Buffer.from('print(1)') }] },
  });
  const report = {
    invalid,
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
