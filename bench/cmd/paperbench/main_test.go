package main

import (
	"strings"
	"testing"
)

// The command line is written to bench/results, which is committed: a -db URL's password
// must not be in it, in either flag form.
func TestCommandLineOfTheResultsHidesTheDatabasePassword(t *testing.T) {
	for _, args := range [][]string{
		{"-set", "quick", "-db", "postgres://bench:s3cret@db.example/postgres", "-out", "r"},
		{"-set", "quick", "-db=postgres://bench:s3cret@db.example/postgres"},
		{"--db", "postgres://bench:s3cret@db.example/postgres?sslmode=require"},
	} {
		got := strings.Join(redactDB(args), " ")
		if strings.Contains(got, "s3cret") || !strings.Contains(got, "db.example") {
			t.Errorf("redactDB(%q) = %q: the password is shown, or the host is not", args, got)
		}
		if strings.Contains(strings.Join(args, " "), "xxxxx") {
			t.Errorf("redactDB changed its argument %q", args)
		}
	}
}
