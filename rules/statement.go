package rules

// StatementKind classifies a statement for the question "may this role run
// it". The rewrite engine maps each parsed statement to one kind.
type StatementKind uint8

const (
	StmtSelect      StatementKind = iota // SELECT, VALUES, TABLE, SELECT … FOR UPDATE
	StmtInsert                           // INSERT (also INSERT … ON CONFLICT)
	StmtUpdate                           // UPDATE
	StmtDelete                           // DELETE
	StmtMerge                            // MERGE
	StmtCopyTo                           // COPY … TO STDOUT
	StmtCopyFrom                         // COPY … FROM STDIN
	StmtTruncate                         // TRUNCATE
	StmtDDL                              // CREATE, ALTER, DROP, COMMENT, GRANT, REVOKE, …
	StmtCall                             // CALL
	StmtDo                               // DO
	StmtLock                             // LOCK
	StmtListen                           // LISTEN, UNLISTEN
	StmtNotify                           // NOTIFY
	StmtSet                              // SET / RESET of ordinary settings
	StmtExplain                          // EXPLAIN (the explained statement is checked too)
	StmtMaintenance                      // VACUUM, ANALYZE, CLUSTER, REINDEX, REFRESH, CHECKPOINT

	// The session kinds below are allowed to every role: without them no
	// client library works, and none of them reads or writes data by itself
	// (PREPARE, EXECUTE and DECLARE have their inner statement checked).
	StmtTransaction // BEGIN, COMMIT, ROLLBACK, SAVEPOINT, SET TRANSACTION
	StmtShow        // SHOW
	StmtPrepare     // PREPARE, EXECUTE, DEALLOCATE
	StmtCursor      // DECLARE, FETCH, MOVE, CLOSE
	StmtDiscard     // DISCARD

	numStatementKinds
)

var statementNames = [numStatementKinds]string{
	"select", "insert", "update", "delete", "merge", "copy_to", "copy_from",
	"truncate", "ddl", "call", "do", "lock", "listen", "notify", "set",
	"explain", "maintenance",
	"transaction", "show", "prepare", "cursor", "discard",
}

func (k StatementKind) String() string {
	if k < numStatementKinds {
		return statementNames[k]
	}
	return "statement(?)"
}

// firstSessionKind is the first kind every role may run.
const firstSessionKind = StmtTransaction

// statementSet is a bit set of statement kinds.
type statementSet uint32

func (s statementSet) has(k StatementKind) bool { return s&(1<<k) != 0 }

const sessionKinds statementSet = (1<<numStatementKinds - 1) &^ (1<<firstSessionKind - 1)

// allStatements is what unrestricted roles may run.
const allStatements statementSet = 1<<numStatementKinds - 1

// parseStatementKind accepts the names above plus "copy" for both
// directions.
func parseStatementKind(s string) (statementSet, bool) {
	if s == "copy" {
		return 1<<StmtCopyTo | 1<<StmtCopyFrom, true
	}
	for i, n := range statementNames {
		if n == s {
			return 1 << i, true
		}
	}
	return 0, false
}
