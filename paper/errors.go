package paper

import (
	"errors"
	"fmt"
)

// Sentinel errors shared by every package; match them with errors.Is.
var (
	// ErrNotFound means the paper, space or message asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAmbiguous means a title fragment matched more than one paper.
	ErrAmbiguous = errors.New("ambiguous")
	// ErrInvalid marks bad input: a record that can never be processed as it is.
	ErrInvalid = errors.New("invalid input")
	// ErrPermanent marks a failure that retrying cannot fix (an API's 400, an answer that stays
	// invalid): the message is terminated and dead-lettered.
	ErrPermanent = errors.New("permanent failure")
	// ErrUnavailable means the database could not be reached or could not do the work,
	// whatever the records given (refused or dropped connections, a server shutting down or
	// starting, a read-only standby, a full disk): no record is at fault, and the same records
	// will go through once it is back.
	ErrUnavailable = errors.New("database unavailable")
	// ErrCannotWrite marks, with ErrUnavailable, a database that answers but cannot write
	// although statements that write nothing succeed: a full disk.
	ErrCannotWrite = errors.New("database cannot write")
	// ErrSpaceMismatch means a query vector was made by a different model than the space holds.
	ErrSpaceMismatch = errors.New("embedding space mismatch")
	// ErrSpaceDropped means vectors were to be stored in an embedding space that no longer
	// exists (`paperpipe spaces drop`): no record is at fault, and no retry can store them.
	ErrSpaceDropped = errors.New("embedding space dropped")
	// ErrLocked means a write waited too long for rows another session holds locked (a
	// transaction left open by an operator or another tool, a long import): neither the records
	// nor the database are at fault, and the records can be written once the lock is gone. A
	// *LockedError names the papers whose rows were locked, when the store could tell.
	ErrLocked = errors.New("row locked by another session")
	// ErrQueueFull means the queue refused papers because it is full (the workers are behind
	// and it reached a limit, or the NATS server's storage is used up): nothing queued before
	// is lost, and the papers refused can be sent again once the workers have drained it.
	ErrQueueFull = errors.New("the queue is full")
	// ErrNoSearchTerms means a full-text query has no word full-text search uses: only stop
	// words ("the of and") or punctuation. It matches no paper, whatever the archive holds.
	ErrNoSearchTerms = errors.New("no words full-text search uses")
)

// WithheldError is an ErrPermanent for a TL;DR the API will not give for a paper's text under
// the prompt: its content filter withheld the answer (finish_reason content_filter), or the
// model refused (message.refusal). The same request buys the same refusal, so whoever gets one
// records it (a Withheld, store.RecordWithheld): no run asks for that TL;DR again while the
// paper's text, the chat model and the prompt version are the same.
type WithheldError struct {
	// Reason says why, as the record keeps it: "TL;DR withheld by the API's content filter
	// (finish_reason content_filter)", or "the model refused: " and its words quoted.
	Reason string
}

func (e *WithheldError) Error() string { return e.Reason + ": " + ErrPermanent.Error() }

// Unwrap returns ErrPermanent.
func (e *WithheldError) Unwrap() error { return ErrPermanent }

// LockedError is an ErrLocked that names the papers whose rows another session held locked.
// The call wrote nothing; the records of the other papers can be written without waiting.
type LockedError struct {
	// IDs are the locked papers, in the order given.
	IDs []string
	// Err is the store's error (the database's lock timeout).
	Err error
}

func (e *LockedError) Error() string {
	if len(e.IDs) == 1 {
		return fmt.Sprintf("paper %s: %v", e.IDs[0], e.Err)
	}
	return fmt.Sprintf("papers %v: %v", e.IDs, e.Err)
}

// Unwrap returns ErrLocked and the store's error.
func (e *LockedError) Unwrap() []error { return []error{ErrLocked, e.Err} }
