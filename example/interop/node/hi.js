#!/usr/bin/env node
// hi.js calls hello.v1.Hello/Hi with grpc-js in a loop for a while and prints
// one JSON summary on stdout: how many calls were made, how many failed and
// with which status code, and which instances answered. The interop tests in
// example/interop run it against rotor's example server while the server
// rotates connections every second; a client that surfaces a rotation as an
// error shows up in "failures".
//
//   node hi.js --target 127.0.0.1:50051 --seconds 10 --concurrency 4
//
// The channel options are the ones rotor recommends for grpc-js clients (see
// channelOptions below); --no-keepalive leaves grpc-js's defaults.
'use strict';

const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const { values: args } = parseArgs({
  options: {
    target: { type: 'string', default: '127.0.0.1:50051' },
    seconds: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '4' },
    'deadline-ms': { type: 'string', default: '5000' },
    proto: { type: 'string', default: path.join(__dirname, '..', '..', '..', 'proto', 'hello', 'v1', 'hello.proto') },
    'no-keepalive': { type: 'boolean', default: false },
    'retry-unavailable': { type: 'boolean', default: false },
  },
});

// The settings rotor's server.ClientOptions gives grpc-go clients, in grpc-js
// terms: ping no more often than twice the server's MinPingInterval (10 s by
// default), so the server never answers with GOAWAY "too_many_pings", and
// round_robin so that a dns:/// target of a headless Service spreads over
// every pod. Neither is needed to survive rotation: grpc-js reconnects and
// retries transparently on GOAWAY.
//
// --retry-unavailable adds a retry policy for UNAVAILABLE. A call that is
// queued on a connection when its GOAWAY arrives is refused before it is
// sent (Node's HTTP/2 closes it with REFUSED_STREAM; grpc-js would report
// UNAVAILABLE "Stream refused by server"), and grpc-js
// retries a refused call transparently, but only once: if the next
// connection is sent away too before the call goes out, the call fails.
// That takes a GOAWAY moments after a connection opens, which rotor's age
// rotation never sends (ages are at least 0.9 s) but rotating every
// connection many times a second does. Only for idempotent methods.
const retryPolicy = {
  maxAttempts: 5,
  initialBackoff: '0.01s',
  maxBackoff: '0.2s',
  backoffMultiplier: 2,
  retryableStatusCodes: ['UNAVAILABLE'],
};

function channelOptions() {
  const serviceConfig = { loadBalancingConfig: [{ round_robin: {} }] };
  if (args['retry-unavailable']) {
    serviceConfig.methodConfig = [{ name: [{ service: 'hello.v1.Hello', method: 'Hi' }], retryPolicy }];
  }
  const opts = {
    'grpc.service_config': JSON.stringify(serviceConfig),
  };
  if (!args['no-keepalive']) {
    opts['grpc.keepalive_time_ms'] = 20000;
    opts['grpc.keepalive_timeout_ms'] = 20000;
    opts['grpc.keepalive_permit_without_calls'] = 1;
  }
  return opts;
}

function main() {
  const def = protoLoader.loadSync(args.proto, { keepCase: false, longs: String, defaults: true });
  const hello = grpc.loadPackageDefinition(def).hello.v1;
  const client = new hello.Hello(args.target, grpc.credentials.createInsecure(), channelOptions());

  const summary = {
    client: 'grpc-js',
    version: require('@grpc/grpc-js/package.json').version,
    node: process.version,
    calls: 0,
    ok: 0,
    failures: {}, // status code name → count
    firstErrors: [], // up to 5 messages
    servedBy: {}, // fromWho → count
  };
  const stopAt = Date.now() + Number(args.seconds) * 1000;
  const deadlineMs = Number(args['deadline-ms']);

  const once = () =>
    new Promise((resolve) => {
      client.Hi({ toWho: 'grpc-js', message: `call ${summary.calls}` }, { deadline: Date.now() + deadlineMs }, (err, resp) => {
        summary.calls++;
        if (err) {
          const name = grpc.status[err.code] ?? String(err.code);
          summary.failures[name] = (summary.failures[name] ?? 0) + 1;
          if (summary.firstErrors.length < 5) summary.firstErrors.push(`${name}: ${err.details || err.message}`);
        } else {
          summary.ok++;
          summary.servedBy[resp.fromWho] = (summary.servedBy[resp.fromWho] ?? 0) + 1;
        }
        resolve();
      });
    });
  const loop = async () => {
    while (Date.now() < stopAt) await once();
  };

  const workers = [];
  for (let i = 0; i < Number(args.concurrency); i++) workers.push(loop());
  Promise.all(workers).then(() => {
    client.close();
    process.stdout.write(JSON.stringify(summary) + '\n');
  });
}

main();
