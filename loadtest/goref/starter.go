package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
)

// result is what one starter run measured; haul reads it into its ceiling report.
type result struct {
	Workflows  int       `json:"workflows"`
	Failures   int       `json:"failures"`
	Seconds    float64   `json:"seconds"`
	LatencyMs  []float64 `json:"latency_ms"`
	DoneAtS    []float64 `json:"done_at_s"`
	CPUSeconds float64   `json:"cpu_seconds"`
	FirstError string    `json:"first_error,omitempty"`
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func runStarter(args []string) error {
	fs := flag.NewFlagSet("starter", flag.ContinueOnError)
	address := fs.String("address", "127.0.0.1:7233", "frontend HOST:PORT")
	namespace := fs.String("namespace", "default", "namespace")
	queue := fs.String("task-queue", "loadgen-go", "task queue of the Go worker")
	concurrency := fs.Int("concurrency", 20, "workflows in flight")
	duration := fs.Duration("duration", 20*time.Second, "how long to keep starting workflows")
	prefix := fs.String("id-prefix", "goref", "workflow ID prefix (the run's tag)")
	out := fs.String("out", "", "write the JSON result here (default: stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *concurrency < 1 {
		return fmt.Errorf("-concurrency must be at least 1, got %d", *concurrency)
	}
	c, err := dial(*address, *namespace)
	if err != nil {
		return err
	}
	defer c.Close()

	var (
		seq   atomic.Int64
		mu    sync.Mutex
		res   result
		wg    sync.WaitGroup
		ctx   = context.Background()
		cpu0  = cpuSeconds()
		start = time.Now()
	)
	stopAt := start.Add(*duration)
	for i := 0; i < *concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stopAt) {
				id := fmt.Sprintf("%s-%d", *prefix, seq.Add(1))
				t := time.Now()
				run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: *queue},
					workflowName, NoopInput{Tag: *prefix})
				if err == nil {
					err = run.Get(ctx, nil)
				}
				ms := float64(time.Since(t).Microseconds()) / 1000
				mu.Lock()
				if err != nil {
					res.Failures++
					if res.FirstError == "" {
						res.FirstError = err.Error()
					}
				} else {
					res.Workflows++
					res.LatencyMs = append(res.LatencyMs, ms)
					res.DoneAtS = append(res.DoneAtS, time.Since(start).Seconds())
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.CPUSeconds = cpuSeconds() - cpu0
	if res.LatencyMs == nil {
		res.LatencyMs, res.DoneAtS = []float64{}, []float64{}
	}
	body, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = os.Stdout.Write(append(body, '\n'))
		return err
	}
	return os.WriteFile(*out, body, 0o644)
}
