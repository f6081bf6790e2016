"""Pager adapters: the `commands.incidents.pager.Pager` port over a paging service."""
