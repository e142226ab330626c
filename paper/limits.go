package paper

import (
	"fmt"
	"time"
)

// Limits on the fields of an Abstract that the store indexes, and on an author's name. A
// PostgreSQL btree entry holds at most 2,704 bytes: the store would refuse a longer id or
// category after the paper was queued, where no file and line, and no request, are known any
// more. An author's limit is far beyond any real name. Every way a paper comes in (`paperpipe
// ingest`, the web's built-in record parser) refuses a record over them (CheckLengths).
const (
	MaxIDBytes       = 512     // a canonical id
	MaxCategoryBytes = 256     // one category, after white space is folded
	MaxAuthorBytes   = 1 << 10 // one author, after white space is folded
)

// CheckLengths returns an error wrapping ErrInvalid that says the first of a's id, authors and
// categories (in that order) over its limit, as "id is 600 bytes, limit 512", "an author is …"
// or "a category is …", or that a.Published falls outside the years 0000 to 9999 in UTC,
// which no JSON time holds (9999-12-31T23:59:59-14:00 is in the year 10000): such a paper
// could not be queued, as its message is JSON; nil when none is. The title's and abstract's
// limits are the reader's to choose.
func CheckLengths(a Abstract) error {
	if len(a.ID) > MaxIDBytes {
		return fmt.Errorf("id is %d bytes, limit %d: %w", len(a.ID), MaxIDBytes, ErrInvalid)
	}
	for _, s := range a.Authors {
		if len(s) > MaxAuthorBytes {
			return fmt.Errorf("an author is %d bytes, limit %d: %w", len(s), MaxAuthorBytes, ErrInvalid)
		}
	}
	for _, s := range a.Categories {
		if len(s) > MaxCategoryBytes {
			return fmt.Errorf("a category is %d bytes, limit %d: %w", len(s), MaxCategoryBytes, ErrInvalid)
		}
	}
	if y := a.Published.UTC().Year(); !a.Published.IsZero() && (y < 0 || y > 9999) {
		return fmt.Errorf("published is %s (UTC), outside the years 0000 to 9999: %w", a.Published.UTC().Format(time.RFC3339), ErrInvalid)
	}
	return nil
}
