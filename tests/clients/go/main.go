// Command goclient drives Sluice with the Go Kafka clients a microservice shop uses:
// franz-go (kgo, kadm) and sarama. The black-box suite (tests/blackbox/test_go_clients.py)
// runs one scenario per invocation and checks what it printed, and what an independent
// client reads back.
//
// Usage: goclient SCENARIO -brokers HOST:PORT -topic T [-group G] [-n N] [-txn ID]
//
// Scenarios: franz-produce, franz-consume, franz-txn, franz-admin, sarama-produce,
// sarama-consume. Each prints one JSON line on success and exits non-zero on failure.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

type options struct {
	brokers []string
	topic   string
	group   string
	txn     string
	n       int
	timeout time.Duration
}

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: goclient SCENARIO [flags]"))
	}
	scenario := os.Args[1]
	flags := flag.NewFlagSet(scenario, flag.ExitOnError)
	brokers := flags.String("brokers", "127.0.0.1:9092", "bootstrap brokers, comma-separated")
	topic := flags.String("topic", "go", "topic")
	group := flags.String("group", "go-group", "consumer group")
	txn := flags.String("txn", "go-txn", "transactional id")
	n := flags.Int("n", 100, "records")
	timeout := flags.Duration("timeout", 60*time.Second, "deadline for the whole scenario")
	_ = flags.Parse(os.Args[2:])
	o := options{strings.Split(*brokers, ","), *topic, *group, *txn, *n, *timeout}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	run := map[string]func(context.Context, options) (any, error){
		"franz-produce":  franzProduce,
		"franz-consume":  franzConsume,
		"franz-txn":      franzTxn,
		"franz-admin":    franzAdmin,
		"sarama-produce": saramaProduce,
		"sarama-consume": saramaConsume,
	}[scenario]
	if run == nil {
		fail(fmt.Errorf("unknown scenario %q", scenario))
	}
	result, err := run(ctx, o)
	if err != nil {
		fail(err)
	}
	out, _ := json.Marshal(result)
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "goclient:", err)
	os.Exit(1)
}

// value is the i-th record's value in every scenario, so readers can check what arrived.
func value(prefix string, i int) string {
	return fmt.Sprintf("%s-%06d", prefix, i)
}
