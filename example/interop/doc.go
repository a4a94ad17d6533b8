// Package interop holds tests, and nothing to import: real gRPC clients in
// other languages and tools call rotor's example server while it rotates
// every connection every second, and the tests assert that not one call
// fails and that the clients did reconnect. A second run sends every
// connection away 20 times a second (POST /rotate?spread=0s), so that
// connections are told to go away moments after they open.
//
// The clients, and where they live:
//
//   - grpc-go with server.ClientOptions, in the test process;
//   - grpc-js (Node.js), node/hi.js, with @grpc/grpc-js and
//     @grpc/proto-loader pinned by node/package-lock.json and installed with
//     npm ci into node/node_modules; it retries a call refused by a GOAWAY
//     only once, which is why the server leaves connections younger than
//     server.DefaultRotateMinAge alone (node/hi.js keeps an optional retry
//     policy, --retry-unavailable, for other servers);
//   - Python grpcio (Debian's python3-grpcio), python/hi.py, with no
//     generated code;
//   - grpcurl, pinned in tools/go.mod: reflection, health, Hi, and a HiStream
//     that the server ends cleanly when its connection drains;
//   - curl, through the REST gateway, whose own grpc-go connection rotates.
//
// tools/install-deps.sh installs Node.js, npm and python3-grpcio when it runs
// as root (it then leaves the stamp .cache/install-deps-root); a test whose
// runtime is missing skips and says how to get it, unless that stamp exists,
// in which case the missing runtime is a failure.
//
//	go test -race -count=1 ./example/interop/                       # 10 s of calls per client
//	go test -count=1 ./example/interop/ -args -interop.duration=2m  # a longer soak
package interop
