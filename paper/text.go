package paper

import (
	"strings"
	"unicode"
)

// IsControl reports whether r is a C0 or C1 control character or DEL: tab, newline, escape
// (which starts a terminal's escape sequences), bell and the others.
func IsControl(r rune) bool {
	return r < 0x20 || r >= 0x7f && r <= 0x9f
}

// IsHidden reports whether r is a control character (IsControl) or a Unicode format character
// (category Cf: the bidi overrides, zero-width characters): one an id may not hold, as it
// cannot be seen or typed, a terminal acts on some, and a NATS header holding one (an id is
// the message id) is another id's ("id:a\nb" and "id:a b").
func IsHidden(r rune) bool {
	return IsControl(r) || unicode.Is(unicode.Cf, r)
}

// ControlsToSpaces returns s with each control character but NUL (IsControl) replaced by a
// space: in a title, an abstract, an author or a category, a form feed or a stray carriage
// return from a PDF's text is a space, and an escape sequence (an ESC or BEL in text anyone can
// publish) is harmless text. NUL is left for the caller to refuse: PostgreSQL's text cannot
// hold it, and it is a sign of binary or UTF-16 input.
func ControlsToSpaces(s string) string {
	if strings.IndexFunc(s, replacedControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if replacedControl(r) {
			return ' '
		}
		return r
	}, s)
}

func replacedControl(r rune) bool { return r != 0 && IsControl(r) }
