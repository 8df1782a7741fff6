package xdsproto

// Read from the generated table and from the descriptors, for
// TestRulesTableCurrent.
var (
	TableRules         = fieldRules
	DescriptorRules    = descriptorRules
	TableRequired      = oneofRequired
	DescriptorRequired = descriptorRequired
	TableLen           = len(fieldRuleTable) + len(requiredOneofs)
)
