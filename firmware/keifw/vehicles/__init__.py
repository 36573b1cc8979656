"""Generated vehicle modules: `keidrive dbc compile --firmware` writes them from dbc/."""
