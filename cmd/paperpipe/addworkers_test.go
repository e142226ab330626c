package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/pipeline"
)

// status gives each backlog the workers of its consumer only, says that no worker runs a
// backlog with messages waiting and none announced — but not of a reprocess consumer whose
// space was dropped (its note says so, and no worker can run it) nor of an empty backlog —, and
// marks an entry not refreshed for twice its worker's refresh as overdue.
func TestStatusGivesEachBacklogItsOwnWorkers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: pipeline.BucketWorkers})
	if err != nil {
		t.Fatal(err)
	}
	for key, a := range map[string]pipeline.Announcement{
		"a": {Consumer: pipeline.ConsumerNew, Host: "host-a", Refresh: 10},
		"b": {Consumer: "reprocess-s2", Host: "host-b", Refresh: 10},
	} {
		raw, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, key, raw); err != nil {
			t.Fatal(err)
		}
	}
	bl := func(consumer string, pending uint64, dropped string) statusBacklog {
		return statusBacklog{Backlog: pipeline.Backlog{Consumer: consumer, Pending: pending}, DroppedSpace: dropped}
	}
	backlogs := []statusBacklog{bl(pipeline.ConsumerNew, 3, ""), bl("reprocess-s2", 3, ""), bl("reprocess-s3", 3, ""),
		bl("reprocess-s4", 3, "s4"), bl("reprocess-s5", 0, "")}
	// A minute after the writes: every entry, refreshed each 10 s, is overdue.
	if _, _, err := addWorkers(ctx, js, backlogs, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range backlogs {
		var hosts []string
		for _, w := range b.Workers {
			h := w.Host
			if w.Overdue {
				h += " (overdue)"
			}
			hosts = append(hosts, h)
		}
		got = append(got, b.Consumer+": "+strings.Join(hosts, ", ")+map[bool]string{true: " no worker", false: ""}[b.NoWorker])
	}
	want := []string{pipeline.ConsumerNew + ": host-a (overdue)", "reprocess-s2: host-b (overdue)", "reprocess-s3:  no worker",
		"reprocess-s4: ", "reprocess-s5: "}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("backlogs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The note that no worker runs a backlog says what runs one: a worker of the consumer, or for a
// reprocess consumer, the reprocess run of that target (`paperpipe worker` does not run those).
func TestNoWorkerNoteSaysWhatRunsTheBacklog(t *testing.T) {
	t.Parallel()
	for consumer, want := range map[string]string{
		pipeline.ConsumerNew: "start `paperpipe worker` (or `paperpipe up`)",
		"reprocess-s2":       "run the `paperpipe reprocess` of that target again",
		"other":              "start `paperpipe worker --consumer other`",
	} {
		if got := noWorkerNote(statusBacklog{Backlog: pipeline.Backlog{Consumer: consumer, Pending: 2}}, false); !strings.Contains(got, want) {
			t.Errorf("note for %s: %q, want %q", consumer, got, want)
		}
	}
}
