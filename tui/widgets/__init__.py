"""Widgets shared by more than one screen."""
