package main

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/IBM/sarama"
)

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.ClientID = "sluice-goclient"
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	return cfg
}

// saramaProduce writes n records with a SyncProducer (acks=all).
func saramaProduce(_ context.Context, o options) (any, error) {
	p, err := sarama.NewSyncProducer(o.brokers, saramaConfig())
	if err != nil {
		return nil, err
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, o.n)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{
			Topic: o.topic,
			Key:   sarama.StringEncoder(fmt.Sprintf("k%d", i%10)),
			Value: sarama.StringEncoder(value("sarama", i)),
		}
	}
	if err := p.SendMessages(msgs); err != nil {
		return nil, err
	}
	return map[string]any{"produced": len(msgs)}, nil
}

// collector is a sarama group handler that keeps every value it is given and marks it
// consumed, until it has `want` of them.
type collector struct {
	mu     sync.Mutex
	values []string
	want   int
	done   chan struct{}
	once   sync.Once
}

func (c *collector) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (c *collector) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (c *collector) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		c.mu.Lock()
		c.values = append(c.values, string(msg.Value))
		full := len(c.values) >= c.want
		c.mu.Unlock()
		s.MarkMessage(msg, "")
		if full {
			s.Commit()
			c.once.Do(func() { close(c.done) })
		}
	}
	return nil
}

// saramaConsume reads n records as a member of a consumer group and commits them.
func saramaConsume(ctx context.Context, o options) (any, error) {
	cfg := saramaConfig()
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	g, err := sarama.NewConsumerGroup(o.brokers, o.group, cfg)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	c := &collector{want: o.n, done: make(chan struct{})}
	consumeCtx, stop := context.WithCancel(ctx)
	errs := make(chan error, 1)
	go func() {
		for consumeCtx.Err() == nil {
			if err := g.Consume(consumeCtx, []string{o.topic}, c); err != nil {
				errs <- err
				return
			}
		}
	}()
	select {
	case <-c.done:
	case err := <-errs:
		stop()
		return nil, err
	case <-ctx.Done():
		stop()
		return nil, fmt.Errorf("after %d of %d records: %w", len(c.values), o.n, ctx.Err())
	}
	stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	values := append([]string(nil), c.values...)
	sort.Strings(values)
	return map[string]any{"values": values}, nil
}
