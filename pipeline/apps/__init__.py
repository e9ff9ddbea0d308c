"""Layer 6, apps: what users run on top of the rows (editor, web app, HuEv, benchmark, real maps)."""
