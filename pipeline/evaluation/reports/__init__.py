"""The reports/ folder's contents: the paper's tables beside ours, paired differences, figures,
the CPU studies' summaries and reports/README.md, one concern per module."""
