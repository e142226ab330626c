package store

// StopWatching stops l's watch, as if the holder's process were gone with its host: nothing
// asks the lock's session any more, or takes the lock again. Unlock still works after it.
func (l *RunLock) StopWatching() {
	close(l.stop)
	<-l.done
	// Unlock closes stop and waits for done again: a fresh stop, and done as it is (closed).
	l.stop = make(chan struct{})
}
