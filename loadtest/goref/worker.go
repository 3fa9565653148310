package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

func runWorker(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	address := fs.String("address", "127.0.0.1:7233", "frontend HOST:PORT")
	namespace := fs.String("namespace", "default", "namespace")
	queue := fs.String("task-queue", "loadgen-go", "task queue to poll")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := dial(*address, *namespace)
	if err != nil {
		return err
	}
	defer c.Close()
	// Default worker options: what a new user of the Go SDK gets.
	w := worker.New(c, *queue, worker.Options{})
	w.RegisterWorkflowWithOptions(NoopActivityWorkflow, workflow.RegisterOptions{Name: workflowName})
	w.RegisterActivityWithOptions(Noop, activity.RegisterOptions{Name: activityName})
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting the worker on %s: %w", *queue, err)
	}
	defer w.Stop()
	fmt.Println("ready")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	return nil
}
