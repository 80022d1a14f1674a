// PutRecords + GetRecords against kinedge with the AWS SDK for JavaScript v3
// (@aws-sdk/client-kinesis), for tests/interop/test_js_sdk.py.
//
//   node kinesis_sdk.mjs ENDPOINT STREAM HANDLER COUNT
//
// HANDLER: "default" (the client's own: NodeHttp2Handler for Kinesis in Node, HTTP/2 only),
// "http2" (an explicit NodeHttp2Handler with concurrent streams), "http1" (NodeHttpHandler).
// Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; a TLS endpoint's CA from
// NODE_EXTRA_CA_CERTS. Prints one JSON line: the handler used, the PutRecords answer and the
// data read back from every shard.
import {
  KinesisClient,
  PutRecordsCommand,
  ListShardsCommand,
  GetShardIteratorCommand,
  GetRecordsCommand,
} from "@aws-sdk/client-kinesis";
import { NodeHttp2Handler, NodeHttpHandler } from "@smithy/node-http-handler";

const [endpoint, stream, handlerKind, countText] = process.argv.slice(2);
const count = Number(countText);

let requestHandler;
if (handlerKind === "http2") {
  requestHandler = new NodeHttp2Handler({ requestTimeout: 20000, disableConcurrentStreams: false });
} else if (handlerKind === "http1") {
  requestHandler = new NodeHttpHandler({ requestTimeout: 20000 });
} else if (handlerKind !== "default") {
  throw new Error(`unknown handler ${handlerKind}`);
}

const client = new KinesisClient({
  endpoint,
  region: "us-east-1",
  maxAttempts: 1,
  ...(requestHandler ? { requestHandler } : {}),
});

try {
  const handler = client.config.requestHandler.constructor.name;
  const records = Array.from({ length: count }, (_, i) => ({
    Data: Buffer.from(`js-record-${i}`),
    PartitionKey: `key-${i}`,
  }));
  const put = await client.send(new PutRecordsCommand({ StreamName: stream, Records: records }));
  const read = [];
  const shards = await client.send(new ListShardsCommand({ StreamName: stream }));
  for (const shard of shards.Shards) {
    let { ShardIterator: iterator } = await client.send(
      new GetShardIteratorCommand({
        StreamName: stream,
        ShardId: shard.ShardId,
        ShardIteratorType: "TRIM_HORIZON",
      }),
    );
    for (;;) {
      const out = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10000 }));
      for (const r of out.Records) read.push(Buffer.from(r.Data).toString());
      if (out.Records.length === 0 || !out.NextShardIterator) break;
      iterator = out.NextShardIterator;
    }
  }
  console.log(
    JSON.stringify({
      handler,
      failed: put.FailedRecordCount,
      put: put.Records.map((r) => r.SequenceNumber ?? null),
      read,
      requestId: put.$metadata.requestId,
    }),
  );
} finally {
  client.destroy();
}
