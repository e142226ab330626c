package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/openaitest"
)

// `batches abandon` of a job still preparing looks at OpenAI's list of batches, holding the
// job's lock in a database session of its own. When the database ends that session meanwhile
// (a restart, idle_session_timeout) and a run resumes the job — creating its batch — abandon
// went by its look, taken before: it closed the job as failed while its batch ran, billed, its
// results never collected. It confirms the lock, and that the job is as it looked at it, first.
func TestBatchesAbandonLeavesAJobTakenOverWhileItLooked(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 2)
	ctx := t.Context()
	job := e.jobWhoseCreateWasRefused(t)
	var once sync.Once
	looking := e.fakeBehind(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/batches" {
			return false
		}
		// The list as it is now, before the job's batch exists; then the lock's session ends
		// and a run resumes the job, before abandon reads the answer.
		rec := httptest.NewRecorder()
		e.fake.Handler().ServeHTTP(rec, r)
		once.Do(func() {
			var n int
			if err := e.st.Pool().QueryRow(ctx, `SELECT count(pg_terminate_backend(l.pid, 10000))
				FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
					AND ((l.classid::int8 << 32) | l.objid::int8) = hashtextextended('paperpipe.batch.job.' || current_schema() || '.' || $1::bigint, 0)`,
				job.ID).Scan(&n); err != nil || n != 1 {
				t.Errorf("ended %d sessions holding the job's lock (%v), want 1", n, err)
			}
			if _, err := runReprocess(ctx, e.c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: false}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
				t.Errorf("the run resuming the job: %v", err)
			}
		})
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		return true
	}, nil)
	var said bytes.Buffer
	err := abandonBatchJobs(ctx, looking, e.st, []int64{job.ID}, false, &said)
	if err == nil || !strings.Contains(err.Error(), "took the job over") || strings.Contains(said.String(), "abandoned batch job") {
		t.Errorf("abandon: %v, said %q; want the job left to the run that took it over", err, said.String())
	}
	e.reprocess(t, ctx, e.c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: true, poll: 5 * time.Millisecond})
	if n := e.count(t, `SELECT count(*) FROM tldrs`); n != 2 || e.fake.Stats().ChatDelivered != 2 {
		t.Errorf("%d TL;DRs stored, %d chat completions billed; want 2 and 2", n, e.fake.Stats().ChatDelivered)
	}
}
