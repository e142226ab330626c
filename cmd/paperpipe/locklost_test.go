package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/paperpipe/paperpipe/internal/openaitest"
)

// TestReprocessThatLostItsLockAndFailedSaysBoth: a run that failed (here the API refused its
// key) and lost its lock meanwhile said only that it lost its lock: the lock check as the run
// ends replaced the run's error, and the refusal — what the user must fix before running the
// same command again — was not said at all.
func TestReprocessThatLostItsLockAndFailedSaysBoth(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{APIKey: "sk-rotated"}) // the run's key, sk-test, is refused
	e.seed(t, 4)
	// Before the API answers the run's first request, the server ends the session holding the
	// run's lock (as its keepalive would) and another session takes the lock.
	take, takeErr := takeTLDRRunLock(t, e.st)
	var once sync.Once
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(take)
		e.fake.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(api.Close)
	c := e.cfg(func(c *config) { c.BaseURL = api.URL })
	var errw bytes.Buffer
	_, err := runReprocess(t.Context(), c, reprocessOptions{tldrOnly: true}, &bytes.Buffer{}, &errw)
	if *takeErr != nil {
		t.Fatalf("ending the lock's session: %v", *takeErr)
	}
	if err == nil {
		t.Fatalf("a run whose key the API refuses succeeded\n%s", errw.String())
	}
	for _, want := range []string{"lost its lock", "401"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the run's error does not say %q:\n%v\n%s", want, err, errw.String())
		}
	}
}
