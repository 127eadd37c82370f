// Starts the local-aws-sqs stand-in (npm local-aws-sqs@2.0.2, which implements
// StartMessageMoveTask) on 127.0.0.1 and a free port, prints {"endpoint": "http://127.0.0.1:PORT"}
// on one line, and exits when its standard input closes (the Go test that started it ended).
//
// usage: node local-aws-sqs.cjs /path/to/tools/node_modules/local-aws-sqs
"use strict";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node local-aws-sqs.cjs <path to node_modules/local-aws-sqs>");
  process.exit(2);
}

let createSqsServer;
try {
  ({ createSqsServer } = require(dir));
} catch (err) {
  console.error(`cannot load local-aws-sqs from ${dir}: ${err.message}; run \`make tools\``);
  process.exit(3);
}

(async () => {
  const server = await createSqsServer({
    port: 0,
    hostname: "127.0.0.1",
    emulateQueueCreationLifecycle: false,
  });
  const { port } = server.address();
  process.stdout.write(JSON.stringify({ endpoint: `http://127.0.0.1:${port}` }) + "\n");
  process.stdin.resume();
  process.stdin.on("end", () => {
    server.close();
    process.exit(0);
  });
})().catch((err) => {
  console.error(`start local-aws-sqs: ${err.message}`);
  process.exit(4);
});
