// Enhanced fan-out against kinedge with the AWS SDK for JavaScript v3 (@aws-sdk/client-kinesis),
// for tests/interop/test_fanout.py: RegisterStreamConsumer, DescribeStreamConsumer, then
// SubscribeToShardCommand over the client's default handler (NodeHttp2Handler: HTTP/2 with
// prior knowledge over http://, by ALPN over https://), with records put before and while
// subscribed.
//
//   node fanout_sdk.mjs ENDPOINT STREAM_ARN CONSUMER_NAME COUNT
//
// Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Prints one JSON line: the
// handler, the consumer's status, the records' data in the order they arrived, each event's
// ContinuationSequenceNumber and last record's SequenceNumber.
import {
  KinesisClient,
  PutRecordCommand,
  RegisterStreamConsumerCommand,
  DescribeStreamConsumerCommand,
  SubscribeToShardCommand,
} from "@aws-sdk/client-kinesis";

const [endpoint, streamArn, consumerName, countText] = process.argv.slice(2);
const count = Number(countText);
const streamName = streamArn.split("/").pop();

const client = new KinesisClient({ endpoint, region: "us-east-1", maxAttempts: 1 });

async function put(i) {
  await client.send(
    new PutRecordCommand({ StreamName: streamName, Data: Buffer.from(`fanout-${i}`), PartitionKey: "k" }),
  );
}

try {
  const handler = client.config.requestHandler.constructor.name;
  const registered = await client.send(
    new RegisterStreamConsumerCommand({ StreamARN: streamArn, ConsumerName: consumerName }),
  );
  const consumerArn = registered.Consumer.ConsumerARN;
  const described = await client.send(new DescribeStreamConsumerCommand({ ConsumerARN: consumerArn }));
  const half = Math.floor(count / 2);
  for (let i = 0; i < half; i++) await put(i);
  const abort = new AbortController();
  const sub = await client.send(
    new SubscribeToShardCommand({
      ConsumerARN: consumerArn,
      ShardId: "shardId-000000000000",
      StartingPosition: { Type: "TRIM_HORIZON" },
    }),
    { abortSignal: abort.signal },
  );
  const data = [];
  const events = [];
  let putting = null;
  for await (const event of sub.EventStream) {
    const e = event.SubscribeToShardEvent;
    if (!e) throw new Error(`unexpected event ${JSON.stringify(Object.keys(event))}`);
    for (const r of e.Records) data.push(Buffer.from(r.Data).toString());
    events.push({
      records: e.Records.length,
      continuation: e.ContinuationSequenceNumber ?? null,
      last: e.Records.length ? e.Records[e.Records.length - 1].SequenceNumber : null,
      millisBehind: e.MillisBehindLatest,
    });
    // The second half goes in once the subscription is live.
    if (putting === null) {
      putting = (async () => {
        for (let i = half; i < count; i++) await put(i);
      })();
    }
    if (data.length >= count) break;
  }
  await putting;
  // Leaving the loop does not end the HTTP/2 stream: cancel the subscription.
  abort.abort();
  console.log(
    JSON.stringify({
      handler,
      registeredStatus: registered.Consumer.ConsumerStatus,
      describedStatus: described.ConsumerDescription.ConsumerStatus,
      consumerArn,
      data,
      events,
    }),
  );
} finally {
  client.destroy();
}
// The SDK may keep the aborted stream's session referenced: do not wait for it.
process.exit(0);
