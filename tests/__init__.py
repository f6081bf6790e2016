"""Tests of aiops-bot."""
