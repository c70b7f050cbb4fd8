// Package crm is pgcloak's sample CRM: a schema modelled on a B2C and B2B
// CRM (schema.sql), privacy rules for it with the roles of the CRM privacy
// practice (rules.yaml), and a deterministic data generator (Load). The
// demo, the tests and docs/rules.md use it.
package crm

import _ "embed"

// Schema is schema.sql: the tables, and the sample login roles.
//
//go:embed schema.sql
var Schema string

// Rules is rules.yaml: the privacy rules for the sample CRM.
//
//go:embed rules.yaml
var Rules []byte

// Logins are the sample principals' database logins; all have
// DemoPassword.
var Logins = []string{"alice", "bob", "erin", "sam", "connie", "walt", "victor",
	"mia", "ana", "dex", "petra", "dana", "crm_app"}

// DemoPassword is the password schema.sql gives the sample logins.
const DemoPassword = "pgcloak-demo"
