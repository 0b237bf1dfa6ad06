"""Face 2: the server-rendered browser UI (pages and htmx partials). Face 1, the JSON API, is avatar_creator/api/."""
