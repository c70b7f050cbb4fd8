package report

import (
	"errors"
	"path/filepath"
	"sort"

	"github.com/pgcloak/pgcloak/audit"
)

// expand turns an --audit-file value into its files: a glob pattern (the
// current file and its rotated ones, audit*.log) or a file name.
func expand(pattern string) ([]string, error) {
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return []string{pattern}, nil // let the reader say it is missing
	}
	sort.Strings(files)
	return files, nil
}

// verifyLog checks the hash chain of one log (audit.Verify, as pgcloak
// audit verify does).
func verifyLog(pattern string, files []string, open bool) LogIntegrity {
	li := LogIntegrity{Pattern: pattern, Files: files}
	rep, err := audit.Verify(files, audit.VerifyOptions{Open: open})
	if rep != nil {
		if len(rep.Files) > 0 {
			li.Files = rep.Files
		}
		li.Records, li.FirstSeq, li.LastSeq, li.Closed, li.Notes = rep.Records, rep.FirstSeq, rep.LastSeq, rep.Closed, rep.Notes
	}
	var be *audit.BreakError
	switch {
	case errors.As(err, &be):
		li.Break = &ChainBreak{File: be.File, Line: be.Line, Seq: be.Seq, Message: be.Msg}
	case err != nil:
		li.Error = err.Error()
	default:
		li.Intact = true
	}
	return li
}
