package main

import (
	"context"
	"time"

	"go.temporal.io/sdk/workflow"
)

// Names match haul's NoopActivityWorkflow and its `noop` activity, so the histories of both
// contenders read the same: one start, one scheduled activity, two billable actions.
const (
	workflowName = "NoopActivityWorkflow"
	activityName = "noop"
)

// NoopInput has the JSON shape of haul's NoopInput model.
type NoopInput struct {
	Tag string `json:"tag"`
}

// NoopActivityWorkflow runs one activity that does nothing, then completes.
func NoopActivityWorkflow(ctx workflow.Context, in NoopInput) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
	})
	return workflow.ExecuteActivity(ctx, activityName).Get(ctx, nil)
}

// Noop returns at once: the load test measures Temporal, not the activity.
func Noop(ctx context.Context) error {
	return nil
}
