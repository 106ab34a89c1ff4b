"""The SQL catalogue: typed models, migrations, sessions and the queries flows and curators need."""
