"""The `stratascope` command line and the Streamlit dashboard."""
