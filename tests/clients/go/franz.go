package main

import (
	"context"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// franzProduce writes n records with kgo's defaults (idempotent, acks=all) and reports the
// offsets it was given.
func franzProduce(ctx context.Context, o options) (any, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.brokers...), kgo.DefaultProduceTopic(o.topic))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	records := make([]*kgo.Record, o.n)
	for i := range records {
		records[i] = &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i%10)), Value: []byte(value("franz", i))}
	}
	results := cl.ProduceSync(ctx, records...)
	if err := results.FirstErr(); err != nil {
		return nil, err
	}
	return map[string]any{"produced": len(results)}, nil
}

// franzConsume reads n records as a member of a consumer group from the start, commits them,
// and returns their values sorted.
func franzConsume(ctx context.Context, o options) (any, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(o.brokers...),
		kgo.ConsumerGroup(o.group),
		kgo.ConsumeTopics(o.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var values []string
	for len(values) < o.n {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("after %d of %d records: %w", len(values), o.n, err)
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			fetchErr = fmt.Errorf("fetching %s-%d: %w", t, p, err)
		})
		if fetchErr != nil {
			return nil, fetchErr
		}
		fetches.EachRecord(func(r *kgo.Record) { values = append(values, string(r.Value)) })
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
	}
	sort.Strings(values)
	return map[string]any{"values": values}, nil
}

// franzTxn writes n records in a transaction it commits and n more in one it aborts.
func franzTxn(ctx context.Context, o options) (any, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(o.brokers...),
		kgo.DefaultProduceTopic(o.topic),
		kgo.TransactionalID(o.txn),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	for _, commit := range []bool{true, false} {
		if err := cl.BeginTransaction(); err != nil {
			return nil, fmt.Errorf("begin: %w", err)
		}
		prefix := "aborted"
		if commit {
			prefix = "committed"
		}
		records := make([]*kgo.Record, o.n)
		for i := range records {
			records[i] = &kgo.Record{Value: []byte(value(prefix, i))}
		}
		if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
			return nil, fmt.Errorf("produce: %w", err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			return nil, fmt.Errorf("end (commit=%v): %w", commit, err)
		}
	}
	return map[string]any{"committed": o.n, "aborted": o.n}, nil
}

// franzAdmin creates a topic of 3 partitions, lists it, reads its end offsets and describes
// a group, through kadm.
func franzAdmin(ctx context.Context, o options) (any, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	created, err := adm.CreateTopics(ctx, 3, 1, nil, o.topic)
	if err != nil {
		return nil, err
	}
	if err := created.Error(); err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	topics, err := adm.ListTopics(ctx, o.topic)
	if err != nil {
		return nil, err
	}
	details, ok := topics[o.topic]
	if !ok || details.Err != nil {
		return nil, fmt.Errorf("topic not listed: %v", details.Err)
	}
	ends, err := adm.ListEndOffsets(ctx, o.topic)
	if err != nil {
		return nil, err
	}
	groups, err := adm.DescribeGroups(ctx, o.group)
	if err != nil {
		return nil, err
	}
	state := ""
	for _, g := range groups {
		state = g.State
	}
	return map[string]any{
		"partitions":  len(details.Partitions),
		"end_offsets": len(ends[o.topic]),
		"group_state": state,
	}, nil
}
