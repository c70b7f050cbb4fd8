package rules

// checkUnsignedDelegation warns when delegating applications may name
// their end users without a signature: one SQL injection in such an
// application can then switch to any end user of its end_user_roles.
func (p *Policy) checkUnsignedDelegation() []Finding {
	if !p.delegation.Unsigned {
		return nil
	}
	var out []Finding
	for _, lr := range p.loginList {
		if lr.delegating {
			out = append(out, Finding{Severity: SevWarning, Code: "delegation", File: p.file, Line: lr.at.Line, Col: lr.at.Col,
				Message: "delegating login \"" + lr.login + "\" names end users unsigned (delegation.unsigned: true): an SQL injection in the application can switch to any of its end users; set delegation.key_env"})
		}
	}
	return out
}
