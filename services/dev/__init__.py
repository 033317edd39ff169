"""Development tools: `sns-telegram dev` (everything on one machine), `dev-token`, the demo."""
