// Package routing will be the shunting engine (消息分流): it picks an agent for each service session by
// the shop's compiled rules, is the only writer of capacity slots, keeps the waiting queue, re-routes
// the sessions of agents who go offline, and runs simulations and shadow runs (issue "Shunting engine").
//
// Until then sessions wait in state queued for a manager's manual assignment (session.Service.Assign).
package routing
