package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/pipeline"
)

// TestStatusListsABacklogsFirstWorkersAndCountsTheRestThoseToLookAtFirst: under a backlog of
// 30 workers, status lists 20, then "and 10 more workers" with their states; the paused, stopping
// and not-heard-from ones are among the 20 wherever they come. It listed every worker, up to the
// 1,000 announcements read, pushing the dead letters, the notes and the usage off the screen.
func TestStatusListsABacklogsFirstWorkersAndCountsTheRestThoseToLookAtFirst(t *testing.T) {
	bl := statusBacklog{Backlog: pipeline.Backlog{Consumer: pipeline.ConsumerNew, Pending: 5}}
	for i := range 30 {
		wk := statusWorker{AnnouncedWorker: pipeline.AnnouncedWorker{Announcement: pipeline.Announcement{
			Host: fmt.Sprintf("host-%02d", i), PID: 100 + i, Consumer: pipeline.ConsumerNew, State: pipeline.StateWorking}}}
		switch i {
		case 3, 27:
			wk.State = pipeline.StateIdle
		case 22:
			wk.Overdue = true
		case 25:
			wk.State = pipeline.StatePaused
			wk.Pause = &pipeline.Pause{Reason: "api_unreachable"}
		case 29:
			wk.State = pipeline.StateStopping
		}
		bl.Workers = append(bl.Workers, wk)
	}
	var out strings.Builder
	printBacklogs(&out, []statusBacklog{bl})
	text := out.String()
	if n := strings.Count(text, "  worker host-"); n != 20 {
		t.Errorf("%d workers listed under a backlog of 30; want 20:\n%s", n, text)
	}
	for _, host := range []string{"host-22", "host-25", "host-29"} {
		if !strings.Contains(text, "worker "+host+" ") {
			t.Errorf("%s (not heard from, paused or stopping) is not among those listed:\n%s", host, text)
		}
	}
	if !strings.Contains(text, "and 10 more workers") || !strings.Contains(text, "(9 working, 1 idle; `paperpipe status --json` lists them all)") {
		t.Errorf("the workers left out are not counted by state:\n%s", text)
	}
	out.Reset()
	bl.Workers = bl.Workers[:20]
	printBacklogs(&out, []statusBacklog{bl})
	if n := strings.Count(out.String(), "  worker host-"); n != 20 || strings.Contains(out.String(), "more workers") {
		t.Errorf("a backlog of 20 workers is not listed whole:\n%s", out.String())
	}
}
