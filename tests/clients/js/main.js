// Drives Sluice with the JavaScript Kafka clients of Node.js services: KafkaJS and Confluent's
// @confluentinc/kafka-javascript (librdkafka underneath, through its KafkaJS-style API). The
// black-box suite (tests/blackbox/test_js_clients.py) runs one scenario per process and checks
// the one JSON line it prints, and what an independent client reads back.
//
// Usage: node main.js SCENARIO --brokers HOST:PORT --topic T [--group G] [--n N] [--timeout-ms MS]
//
// Scenarios: kafkajs-produce, kafkajs-consume, confluent-produce, confluent-consume. Each exits
// non-zero with the cause on stderr when it fails or its deadline passes. kafkajs-txncopy
// (--topic IN --output OUT --group G) copies IN to OUT exactly once, each batch in a
// transaction with its offsets, until it is killed: the suite kills it and starts it again.
'use strict';

const kafkajs = require('kafkajs');
const confluent = require('@confluentinc/kafka-javascript').KafkaJS;

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) {
      throw new Error(`expected --key value, got ${argv[i]}`);
    }
    args[argv[i].slice(2)] = argv[i + 1];
  }
  args.n = Number(args.n || 100);
  args.timeoutMs = Number(args['timeout-ms'] || 60000);
  return args;
}

// The i-th record's value in every scenario, so readers can check what arrived.
function value(prefix, i) {
  return `${prefix}-${String(i).padStart(6, '0')}`;
}

// Each client's producer and consumer, made the way its own documentation shows.
const clients = {
  kafkajs: {
    producer: (args) => new kafkajs.Kafka({
      clientId: 'jsclient', brokers: args.brokers.split(','), logLevel: kafkajs.logLevel.ERROR,
    }).producer({ idempotent: true, maxInFlightRequests: 1 }),
    consumer: (args) => new kafkajs.Kafka({
      clientId: 'jsclient', brokers: args.brokers.split(','), logLevel: kafkajs.logLevel.ERROR,
    }).consumer({ groupId: args.group }),
    subscribe: (consumer, topic) => consumer.subscribe({ topics: [topic], fromBeginning: true }),
    run: (consumer, eachMessage) => consumer.run({ autoCommit: false, eachMessage }),
  },
  confluent: {
    producer: (args) => new confluent.Kafka().producer({
      'bootstrap.servers': args.brokers, 'enable.idempotence': true, 'acks': 'all', 'linger.ms': 5,
    }),
    consumer: (args) => new confluent.Kafka().consumer({
      'bootstrap.servers': args.brokers, 'group.id': args.group,
      'auto.offset.reset': 'earliest', 'enable.auto.commit': false,
    }),
    subscribe: (consumer, topic) => consumer.subscribe({ topics: [topic] }),
    run: (consumer, eachMessage) => consumer.run({ eachMessage }),
  },
};

// Writes n keyed records in batches of 50 with acks=all (both clients' default when idempotent);
// every batch's acknowledgement is awaited.
async function produce(client, args) {
  const producer = client.producer(args);
  await producer.connect();
  try {
    for (let start = 0; start < args.n; start += 50) {
      const messages = [];
      for (let i = start; i < Math.min(start + 50, args.n); i++) {
        messages.push({ key: `k${i}`, value: value(args.prefix, i) });
      }
      await producer.send({ topic: args.topic, messages });
    }
  } finally {
    await producer.disconnect();
  }
  return { produced: args.n };
}

// Joins the group, reads n records, commits the next offset of each partition it read.
async function consume(client, args) {
  const consumer = client.consumer(args);
  await consumer.connect();
  const values = [];
  const next = new Map();
  try {
    await client.subscribe(consumer, args.topic);
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(
        `deadline passed with ${values.length} of ${args.n} records`)), args.timeoutMs);
      client.run(consumer, async ({ partition, message }) => {
        values.push(message.value.toString());
        next.set(partition, (BigInt(message.offset) + 1n).toString());
        if (values.length >= args.n) {
          clearTimeout(timer);
          resolve();
        }
      }).catch(reject);
    });
    if (values.length > args.n) {
      throw new Error(`read ${values.length} records, expected ${args.n}`);
    }
    await consumer.commitOffsets([...next].map(([partition, offset]) => (
      { topic: args.topic, partition, offset })));
  } finally {
    await consumer.disconnect();
  }
  return { values: values.sort() };
}

// A consume-transform-produce pipeline, KafkaJS's documented way: each batch's copies and the
// batch's next offset go in one transaction. Runs until killed.
async function txncopy(args) {
  const kafka = new kafkajs.Kafka({
    clientId: 'js-copier', brokers: args.brokers.split(','), logLevel: kafkajs.logLevel.ERROR,
  });
  const producer = kafka.producer({
    transactionalId: `${args.group}-copier`, idempotent: true, maxInFlightRequests: 1,
  });
  const consumer = kafka.consumer({ groupId: args.group, readUncommitted: false });
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topics: [args.topic], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      if (batch.messages.length === 0) {
        return;
      }
      const transaction = await producer.transaction();
      try {
        await transaction.send({
          topic: args.output,
          messages: batch.messages.map((m) => ({ key: m.key, value: `copy-${m.value}` })),
        });
        const last = batch.messages[batch.messages.length - 1].offset;
        await transaction.sendOffsets({
          consumerGroupId: args.group,
          topics: [{
            topic: batch.topic,
            partitions: [{ partition: batch.partition, offset: (BigInt(last) + 1n).toString() }],
          }],
        });
        await transaction.commit();
      } catch (err) {
        await transaction.abort();
        throw err;
      }
    },
  });
  console.log(JSON.stringify({ running: true }));
  await new Promise(() => {});
}

async function main() {
  const [scenario, ...rest] = process.argv.slice(2);
  const args = parseArgs(rest);
  if (scenario === 'kafkajs-txncopy') {
    await txncopy(args);
    return;
  }
  const [clientName, action] = (scenario || '').split('-');
  const client = clients[clientName];
  const run = { produce, consume }[action];
  if (!client || !run) {
    throw new Error(`unknown scenario ${scenario}`);
  }
  args.prefix = clientName;
  const deadline = setTimeout(() => {
    console.error(`jsclient: deadline of ${args.timeoutMs} ms passed`);
    process.exit(1);
  }, args.timeoutMs + 5000);
  const result = await run(client, args);
  clearTimeout(deadline);
  console.log(JSON.stringify(result));
  process.exit(0);
}

main().catch((err) => {
  console.error('jsclient:', err && err.stack ? err.stack : err);
  process.exit(1);
});
