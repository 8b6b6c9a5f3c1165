// Package rules is the routing rule language of the shunting engine: the environment an expression
// sees, compiling and validating rules with expr (github.com/expr-lang/expr) under limits, rule-set
// versions and their differences, and schedules that say which version is active when. It is pure:
// no I/O, no live state, no goroutines; routing fills the environment and acts on the answers.
//
// A shop's RuleSet is an ordered list of Rules and a default. The first rule whose `when` holds for the
// session takes it (CompiledRuleSet.Match); its `target` says which agents may serve it, its
// preferences how the engine orders them, its `weight` how many capacity units the session takes. A
// session still waiting after the rule's escalation timeout is matched again against the rules after
// it and then the default (MatchFrom).
//
// Expressions see two variables, typed so that a misspelt field or a wrong type fails when the rule is
// saved, with its line and column:
//
//	session.kind                        "presale", "aftersale" or "unknown"
//	session.product.id / .name / .category
//	session.order.id / .status
//	session.buyer.tier / .tags / .anonymous
//	session.entry_page, session.first_message, session.language
//	session.time.hour / .minute / .weekday   the shop's wall clock (weekday 0 = Sunday)
//	session.in_business_hours, session.queue_length
//	agent.id, agent.status, agent.load, agent.capacity, agent.groups, agent.skills,
//	agent.idle_seconds, agent.last_agent, agent.on_duty      (target and score only)
//
// for example `session.kind == "presale" && session.product.category in ["phone", "tablet"]` and
// `agent.status == "online" && "presale" in agent.groups`.
//
// Invariants: a rule set is compiled only when every rule is valid (Compile, Validate); evaluation
// never panics and never outlives its limits (AllowedBuiltins, MaxSourceBytes, MaxNodes,
// MemoryBudget, MaxPredicateDepth); Active is a pure function of the schedules and the instant, so
// every node agrees on the version in force.
package rules
