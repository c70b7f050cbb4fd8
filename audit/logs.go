package audit

import "errors"

// Logs are the logs every record goes to (a file and stdout, say). Each
// has its own chain, queue and writer, so that one failing sink does not
// break the other's chain.
type Logs []*Log

// Emit queues r on every log.
func (ls Logs) Emit(r *Record) {
	for _, l := range ls {
		l.Emit(r)
	}
}

// Written returns once every log has written the records emitted before.
func (ls Logs) Written() {
	for _, l := range ls {
		l.Written()
	}
}

// Admit is nil when every log admits new statements.
func (ls Logs) Admit() error {
	for _, l := range ls {
		if err := l.Admit(); err != nil {
			return err
		}
	}
	return nil
}

// Healthy is nil when every sink is being written.
func (ls Logs) Healthy() error {
	var errs []error
	for _, l := range ls {
		if err := l.Healthy(); err != nil {
			errs = append(errs, errors.New(l.sink.name()+": "+err.Error()))
		}
	}
	return errors.Join(errs...)
}

// Close closes every log.
func (ls Logs) Close() error {
	var errs []error
	for _, l := range ls {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}
