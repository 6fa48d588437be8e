"""What drives churn and how service is doing: KPIs over time and by group (issue 10, in progress)."""
