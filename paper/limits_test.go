package paper

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckLengths(t *testing.T) {
	t.Parallel()
	ok := Abstract{ID: "id:" + strings.Repeat("x", MaxIDBytes-3), Title: "T", Abstract: "A",
		Authors: []string{"A. Author", strings.Repeat("a", MaxAuthorBytes)}, Categories: []string{"cs.DB", strings.Repeat("c", MaxCategoryBytes)}}
	if err := CheckLengths(ok); err != nil {
		t.Errorf("CheckLengths of fields at their limits: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Abstract)
		want string
	}{
		{"id", func(a *Abstract) { a.ID += "x" }, "id is 513 bytes, limit 512"},
		{"author", func(a *Abstract) { a.Authors[1] += "a" }, "an author is 1025 bytes, limit 1024"},
		{"category", func(a *Abstract) { a.Categories[1] += "c" }, "a category is 257 bytes, limit 256"},
	} {
		a := ok
		a.Authors, a.Categories = append([]string(nil), ok.Authors...), append([]string(nil), ok.Categories...)
		tc.edit(&a)
		if err := CheckLengths(a); err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckLengths with a long %s: %v, want an error containing %q wrapping ErrInvalid", tc.name, err, tc.want)
		}
	}
}
