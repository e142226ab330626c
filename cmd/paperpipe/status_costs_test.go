package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// addUsage writes a usage ledger row of day for model and kind, as the workers' RecordUsage
// would have on that day.
func (c *cli) addUsage(day time.Time, model, kind string, requests, in, out int64) {
	c.t.Helper()
	db, err := pgx.Connect(c.t.Context(), c.databaseURL())
	if err != nil {
		c.t.Fatal(err)
	}
	defer db.Close(c.t.Context())
	if _, err := db.Exec(c.t.Context(), `INSERT INTO api_usage (day, model, kind, requests, input_tokens, output_tokens)
		VALUES ($1::date, $2, $3, $4, $5, $6)`, day.Format(time.DateOnly), model, kind, requests, in, out); err != nil {
		c.t.Fatal(err)
	}
}

// status says which days its costs cover — the same as the web's status page — in its text
// and its JSON: its table was headed "LAST 30 DAYS" and summed 31 UTC days (today's and the 30
// before), and --json gave costs with no period at all.
func TestStatusSaysWhichDaysItsCostsCover(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("status") // migrates
	before := usageSince(time.Now())
	c.addUsage(before, "gpt-4o-mini", "chat", 2, 1_000_000, 0)                   // the first day: counted
	c.addUsage(before.AddDate(0, 0, -1), "gpt-4o-mini", "chat", 5, 9_000_000, 0) // the day before: not
	var st struct {
		UsageSince time.Time   `json:"usage_since"`
		Cost       []modelCost `json:"cost"`
	}
	c.json(&st, "status")
	r := c.ok("status")
	after := usageSince(time.Now())
	if !st.UsageSince.Equal(before) && !st.UsageSince.Equal(after) {
		t.Errorf("status --json: usage_since %v, want %v (the web's status page's first day)", st.UsageSince, before)
	}
	if len(st.Cost) != 1 || st.Cost[0].Requests != 2 {
		t.Errorf("status --json: cost %+v, want the 2 requests of the window's first day only", st.Cost)
	}
	if !strings.Contains(r.stdout, "SINCE "+before.Format(time.DateOnly)) && !strings.Contains(r.stdout, "SINCE "+after.Format(time.DateOnly)) {
		t.Errorf("status does not say from which day it sums the costs (SINCE %s):\n%s", before.Format(time.DateOnly), r.stdout)
	}
}

// status's total is not read as the whole cost when a model's price is unknown: the model's
// line said so, and the total below it gave the sum of the others as the total.
func TestStatusTotalSaysItLeavesOutModelsWithoutAPrice(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("status") // migrates
	today := time.Now().UTC()
	c.addUsage(today, "gpt-4o-mini", "chat", 10, 1_000_000, 1_000_000)
	c.addUsage(today, "llama3.1:8b", "chat", 10, 1_000_000, 1_000_000)
	r := c.ok("status")
	total := regexp.MustCompile(`(?m)^total .*$`).FindString(r.stdout)
	if !strings.Contains(total, "$0.75") || !strings.Contains(total, "1 model without a price") {
		t.Errorf("status total line %q, want $0.75 and that it leaves out 1 model without a price:\n%s", total, r.stdout)
	}
	c.env = append(c.env, "PAPERPIPE_PRICES=llama3.1:8b=0/0")
	r = c.ok("status")
	if total := regexp.MustCompile(`(?m)^total .*$`).FindString(r.stdout); !strings.Contains(total, "$0.75") || strings.Contains(total, "without a price") {
		t.Errorf("status total line with every price known: %q, want $0.75 alone", total)
	}
}
