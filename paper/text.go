package paper

import "unicode"

// IsHidden reports whether r is a control character (unicode.IsControl: C0 and C1 controls and
// DEL, tab, newline, escape, which starts a terminal's escape sequences, bell and the others)
// or a Unicode format character (category Cf: the bidi overrides, zero-width characters): one
// an id may not hold, as it cannot be seen or typed, a terminal acts on some, and a NATS header
// holding one (an id is the message id) is another id's ("id:a\nb" and "id:a b").
func IsHidden(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}
