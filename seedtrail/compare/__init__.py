"""Two runs side by side: which stages differ, why, and the rendered comparison."""
