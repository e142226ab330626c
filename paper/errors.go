package paper

import "errors"

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
)
