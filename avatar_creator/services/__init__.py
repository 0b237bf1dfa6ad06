"""Every write, by sub-domain. Plain keyword-only functions; the faces (api/, ui/), tasks and commands call these
and nothing else writes. The public names are re-exported here: `from avatar_creator import services`.

The preview job (its states, attempts, retries, cancel, expiry) is services/previews.py.
"""

from avatar_creator.services.accounts import (
    IssuedToken,
    token_issue,
    token_revoke,
    token_revoke_for_user,
    tokens_revoke,
    tokens_revoke_all,
    user_register,
)
from avatar_creator.services.avatars import (
    HeldGeneration,
    avatar_delete,
    avatar_rename,
    avatar_save_upload,
    avatar_upload,
    avatars_generate,
    avatars_generate_abandon,
    avatars_generate_begin,
    avatars_generate_finish,
    preview_save,
)
from avatar_creator.services.credits import (
    credit_account_for_user,
    credits_add,
    credits_available_for_user,
    credits_charge,
    credits_hold,
    credits_release,
)
from avatar_creator.services.previews import (
    TIME_LIMIT_MESSAGE,
    AttemptOutcome,
    preview_attempt,
    preview_cancel,
    preview_discard,
    preview_error,
    preview_fail,
    preview_request,
    previews_expire_due,
    previews_left_queued,
    previews_reap_stuck,
    previews_request,
    previews_requeue_stale,
    retry_delay,
)
from avatar_creator.services.projects import project_create, project_delete, project_touch, project_update
from avatar_creator.services.rates import parse_rate

__all__ = [
    "TIME_LIMIT_MESSAGE",
    "AttemptOutcome",
    "HeldGeneration",
    "IssuedToken",
    "avatar_delete",
    "avatar_rename",
    "avatar_save_upload",
    "avatar_upload",
    "avatars_generate",
    "avatars_generate_abandon",
    "avatars_generate_begin",
    "avatars_generate_finish",
    "credit_account_for_user",
    "credits_add",
    "credits_available_for_user",
    "credits_charge",
    "credits_hold",
    "credits_release",
    "parse_rate",
    "preview_attempt",
    "preview_cancel",
    "preview_discard",
    "preview_error",
    "preview_fail",
    "preview_request",
    "preview_save",
    "previews_expire_due",
    "previews_left_queued",
    "previews_reap_stuck",
    "previews_request",
    "previews_requeue_stale",
    "project_create",
    "project_delete",
    "project_touch",
    "project_update",
    "retry_delay",
    "token_issue",
    "token_revoke",
    "token_revoke_for_user",
    "tokens_revoke",
    "tokens_revoke_all",
    "user_register",
]
