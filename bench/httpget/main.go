// httpget: GETs at a fixed rate, open loop, over keep-alive connections, and prints latency
// percentiles. Each request has a scheduled time (start + i/rate); its latency is counted from
// then, not from when it was sent, so a server that falls behind is charged for the queue it
// causes (no coordinated omission). Used by bench/scripts/view_figures.py for GET-by-key.
//
//	httpget -url 'http://127.0.0.1:8080/v1/views/v/keys/acct-%07d' -keys 1000000 \
//	    -rate 10000 -seconds 10 -connections 16
//
// `%07d` in the URL takes a key number drawn uniformly from [0, keys).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "URL with a %d verb for the key number")
	keys := flag.Int("keys", 1, "key numbers are drawn from [0, keys)")
	rate := flag.Int("rate", 1000, "requests per second")
	seconds := flag.Int("seconds", 10, "how long to send")
	connections := flag.Int("connections", 16, "keep-alive connections (one request in flight each)")
	flag.Parse()
	if *url == "" || *rate <= 0 || *connections <= 0 {
		fmt.Fprintln(os.Stderr, "httpget: -url, a positive -rate and -connections are needed")
		os.Exit(2)
	}
	total := *rate * *seconds
	interval := time.Second / time.Duration(*rate)
	start := time.Now().Add(100 * time.Millisecond)
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: *connections, MaxConnsPerHost: *connections},
		Timeout:   30 * time.Second,
	}
	latencies := make([]time.Duration, total)
	failures := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int, *connections)
	for c := 0; c < *connections; c++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			for i := range next {
				scheduled := start.Add(time.Duration(i) * interval)
				if wait := time.Until(scheduled); wait > 0 {
					time.Sleep(wait)
				}
				resp, err := client.Get(fmt.Sprintf(*url, rng.Intn(*keys)))
				ok := err == nil && resp.StatusCode == 200
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				latencies[i] = time.Since(scheduled)
				if !ok {
					mu.Lock()
					failures++
					mu.Unlock()
				}
			}
		}(int64(c) + 1)
	}
	for i := 0; i < total; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	ms := func(q float64) float64 {
		return float64(latencies[int(q*float64(total-1))].Microseconds()) / 1000
	}
	out, _ := json.Marshal(map[string]any{
		"requests": total, "failures": failures, "achieved_per_s": float64(total) / elapsed.Seconds(),
		"p50_ms": ms(0.5), "p99_ms": ms(0.99), "p999_ms": ms(0.999), "max_ms": ms(1),
	})
	fmt.Println(string(out))
}
