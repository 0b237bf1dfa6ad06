"""The operator's check of the FLUX set-up: one real generation, end to end, with a clear verdict."""

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from avatar_creator import images, prompts
from avatar_creator.generators import GenerationError, GenerationRequest, HuggingFaceGenerator

DEFAULT_PROMPT = "Professional Indonesian woman with modern hijab, smiling"


class Command(BaseCommand):
    help = "Generate one avatar with the configured FLUX set-up and check the image. Exits non-zero when it fails."

    def add_arguments(self, parser):
        parser.add_argument("--prompt", default=DEFAULT_PROMPT)
        parser.add_argument("--body-type", choices=["half_body", "full_body"], default="half_body")
        parser.add_argument("--seed", type=int, default=1234)
        parser.add_argument("--output", type=Path, help="also write the image to this file")

    def handle(self, *args, prompt, body_type, seed, output, **options):
        key = settings.HUGGINGFACE_API_KEY
        model = settings.FLUX_LORA_MODEL if settings.FLUX_USE_LORA else settings.FLUX_MODEL
        endpoint = settings.HF_INFERENCE_URL or f"provider {settings.HF_PROVIDER}"
        lora = f"on, scale {settings.FLUX_LORA_SCALE}" if settings.FLUX_USE_LORA else "off"
        self.stdout.write(f"API key:   {'present' if key else 'MISSING'}")
        self.stdout.write(f"Endpoint:  {endpoint}")
        self.stdout.write(f"Model:     {model} (base {settings.FLUX_MODEL})")
        self.stdout.write(f"LoRA:      {lora}")
        self.stdout.write(f"Timeout:   {settings.FLUX_TIMEOUT:g} s, {settings.FLUX_STEPS} steps")
        if not key:
            raise CommandError("HUGGINGFACE_API_KEY is not set: there is no key to call FLUX with.")

        width, height = prompts.dimensions_for(body_type)
        request = GenerationRequest(
            prompt=prompts.build_prompt(prompt=prompt, gender=None, age_range=None, style=None, ethnicity=None,
                                        body_type=body_type),
            negative_prompt=prompts.build_negative_prompt(body_type=body_type),
            width=width,
            height=height,
            seed=seed,
            num_inference_steps=settings.FLUX_STEPS,
            guidance_scale=settings.FLUX_GUIDANCE_SCALE,
        )  # fmt: skip
        self.stdout.write(f"Generating {width}x{height} (seed {seed}) ...")
        started = time.monotonic()
        try:
            result = HuggingFaceGenerator.from_settings().generate(request)
            image = images.load_image(result.image_bytes, max_side=4096)
        except GenerationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        except images.ImageRejected as exc:
            raise CommandError(f"The image API sent an unusable image: {exc.message}") from None
        elapsed = time.monotonic() - started
        if image.size != (width, height):
            self.stdout.write(f"Note: asked for {width}x{height}, got {image.size[0]}x{image.size[1]}.")
        if output:
            output.write_bytes(result.image_bytes)
            self.stdout.write(f"Wrote {output}")
        self.stdout.write(
            self.style.SUCCESS(
                f"OK: {result.content_type} {image.size[0]}x{image.size[1]}, {len(result.image_bytes) / 1024:.0f} KiB, "
                f"{elapsed:.1f} s, model {result.model}"
            )
        )
