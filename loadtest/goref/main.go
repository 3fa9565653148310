// Command goref is the Go reference for `haul loadtest ceiling`: Temporal's Go SDK with its
// default settings, doing what haul's start_and_complete scenario does.
//
//	goref worker  -address HOST:PORT -namespace NS -task-queue Q
//	goref starter -address HOST:PORT -namespace NS -task-queue Q -concurrency 20 -duration 20s -id-prefix P -out result.json
//
// The worker prints "ready" once it polls and stops on SIGTERM. The starter keeps N workflows
// in flight (start, wait for the result, start the next) for the duration, then writes what it
// measured, its own CPU time over that window among it, as JSON.
package main

import (
	"fmt"
	"log/slog"
	"os"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: goref worker|starter [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "worker":
		err = runWorker(os.Args[2:])
	case "starter":
		err = runStarter(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: use worker or starter", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "goref:", err)
		os.Exit(1)
	}
}

// dial connects without TLS: the reference runs against local clusters only.
func dial(address, namespace string) (client.Client, error) {
	logger := log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr,
		&slog.HandlerOptions{Level: slog.LevelWarn})))
	c, err := client.Dial(client.Options{HostPort: address, Namespace: namespace, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s (namespace %s): %w", address, namespace, err)
	}
	return c, nil
}
