"""valuemetric: Slack bot, scheduler and CLI on top of the analysis package."""
