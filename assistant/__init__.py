"""tunesmith's conversation and terminal: the planner, the session store, the Textual app and
the command line. The planner and the store are plain Python; only `assistant.app` imports
Textual, and nothing here imports torch (training happens in the worker process)."""
