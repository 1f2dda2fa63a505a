"""Assembles the gateway: object store, media, jobs, detection, creation, and the gRPC server around them."""

from __future__ import annotations

import logging
import threading

from google.longrunning import operations_pb2_grpc

from dfp.admission import AdmissionInterceptor
from dfp.audit import AuditLog
from dfp.config import GatewaySettings
from dfp.faces import FaceDetector
from dfp.grpc_util import MutualTls, Server
from dfp.observability import CallMetricsInterceptor
from dfp.quotas import QuotaStore
from dfp.registry import ModelRegistry
from dfp.storage import ObjectStore
from dfp.tokens import TokenStore
from dfp.v1 import creation_pb2_grpc, detection_pb2_grpc, enhancement_pb2_grpc, jobs_pb2_grpc, media_pb2_grpc
from gateway.audit import AuditInterceptor, AuditWriter
from gateway.auth import Authenticator, AuthInterceptor, TeamResolver
from gateway.creation_servicer import ANIMATE_IMAGE, SWAP_FACE, CreationServicer, animate_image_job, swap_face_job
from gateway.creator_client import CreatorClient
from gateway.detection import DetectionPipeline
from gateway.detection_servicer import DETECT_VIDEO, DetectionServicer, detect_video_job
from gateway.detector_client import DetectorClient
from gateway.enhancement_servicer import ENHANCE, EnhancementServicer, enhance_job
from gateway.enhancer_client import EnhancerClient
from gateway.jobs import JobRunner, JobStore
from gateway.media_servicer import MediaServicer
from dfp.content_credentials import SigningIdentity
from gateway.media_store import MediaStore
from gateway.operations_servicer import JobServicer, OperationsServicer
from gateway.quotas import RateLimiter, RateLimitInterceptor, TeamQuotas
from gateway.request_parsing import RequestParsingInterceptor

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 600.0
# Threads beyond the admitted and queued calls: health checks, reflection, and answering refusals.
ADMISSION_SPARE_WORKERS = 8


def _read_tls(settings: GatewaySettings) -> tuple[bytes, bytes] | None:
    """(certificate chain, private key) PEM when both DFP_TLS_CERT and DFP_TLS_KEY are set."""
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise SystemExit("set both DFP_TLS_CERT and DFP_TLS_KEY to serve TLS, or neither")
    if not settings.tls_cert:
        return None
    with open(settings.tls_cert, "rb") as cert, open(settings.tls_key, "rb") as key:
        return cert.read(), key.read()


class Gateway:
    def __init__(self, settings: GatewaySettings):
        self.settings = settings
        self.store = ObjectStore(settings.storage)
        self.store.ensure_buckets()
        authenticator = Authenticator(TokenStore(self.store), settings.auth_cache_s)
        team_of = TeamResolver(authenticator)
        self.audit = AuditWriter(AuditLog(self.store))
        quota_of = TeamQuotas(QuotaStore(self.store), settings.auth_cache_s)
        self.media = MediaStore(self.store, settings.limits, stored_bytes_quota=lambda team: quota_of(team).stored_bytes,
                                usage_cache_s=settings.auth_cache_s,
                                credentials=SigningIdentity.from_files(settings.c2pa_cert, settings.c2pa_key),
                                on_generated=self._audit_generated)
        self.jobs = JobStore(self.store, concurrent_jobs_quota=lambda team: quota_of(team).concurrent_jobs)
        # Mutual TLS to the model server and the enhancer when DFP_MTLS_* name the certificates.
        mtls = MutualTls.from_env()
        self.detector = DetectorClient(settings.detector_target, settings.detector_timeout_s, mtls)
        self.creator = CreatorClient(settings.creator_target, settings.creator_timeout_s)
        self.enhancer = EnhancerClient(settings.enhancer_target, settings.enhancer_timeout_s, mtls)
        face_detector = FaceDetector()
        registry = ModelRegistry(self.store)
        pipeline = DetectionPipeline(self.detector, face_detector)
        self.runner = JobRunner(
            self.jobs,
            {
                DETECT_VIDEO: detect_video_job(pipeline, self.media, self.store, settings.default_detector),
                ANIMATE_IMAGE: animate_image_job(self.creator, self.media, face_detector, settings.limits,
                                                 settings.default_animation_model, settings.animation_batch_size,
                                                 settings.animation_input_size),
                SWAP_FACE: swap_face_job(self.creator, self.media, registry, face_detector,
                                         settings.animation_batch_size),
                ENHANCE: enhance_job(self.enhancer, self.media, self.store),
            },
            workers=settings.job_workers,
            lease_s=settings.job_lease_s,
            poll_s=settings.job_poll_s,
        )
        admission = settings.admission.queue("gateway")
        self.server = Server(
            settings.listen,
            [
                (media_pb2_grpc.add_MediaServiceServicer_to_server, MediaServicer(self.media, team_of), "dfp.v1.MediaService"),
                (
                    detection_pb2_grpc.add_DetectionServiceServicer_to_server,
                    DetectionServicer(pipeline, self.media, self.jobs, self.runner, settings.limits,
                                      settings.default_detector, team_of),
                    "dfp.v1.DetectionService",
                ),
                (
                    creation_pb2_grpc.add_CreationServiceServicer_to_server,
                    CreationServicer(self.media, self.jobs, self.runner, settings.default_animation_model, team_of,
                                     registry),
                    "dfp.v1.CreationService",
                ),
                (
                    enhancement_pb2_grpc.add_EnhancementServiceServicer_to_server,
                    EnhancementServicer(self.media, self.jobs, self.runner, settings.limits, team_of),
                    "dfp.v1.EnhancementService",
                ),
                (operations_pb2_grpc.add_OperationsServicer_to_server, OperationsServicer(self.jobs, team_of),
                 "google.longrunning.Operations"),
                (jobs_pb2_grpc.add_JobServiceServicer_to_server, JobServicer(self.jobs, team_of), "dfp.v1.JobService"),
            ],
            # Admission comes right after the metrics (which count its refusals), before any work.
            interceptors=[CallMetricsInterceptor("gateway"), AdmissionInterceptor(admission, "gateway"),
                          RequestParsingInterceptor(), AuthInterceptor(authenticator),
                          RateLimitInterceptor(authenticator, RateLimiter(quota_of)),
                          AuditInterceptor(authenticator, self.audit)],
            max_workers=admission.max_active + admission.max_queued + ADMISSION_SPARE_WORKERS,
            tls=_read_tls(settings),
            health_address=settings.health_listen,
        )
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="media-sweeper", daemon=True)

    def _audit_generated(self, team: str, record) -> None:
        """Every item a job generates, in the audit log beside the call that asked for it."""
        labels = record.labels
        self.audit.submit(team=team, token_id="", token_name="gateway job", action="StoreGenerated",
                          resources=[record.name, f"operations/{labels.get('dfp_operation', '')}",
                                     f"generator:{labels.get('dfp_generator', '')}"], outcome="OK")

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> None:
        self.server.start()
        self.runner.start()
        self._sweeper.start()

    def stop(self) -> None:
        self._stop.set()
        self.server.stop()
        self.runner.stop()
        self.audit.close()
        self.detector.close()
        self.creator.close()
        self.enhancer.close()

    def _sweep_loop(self) -> None:
        while not self._stop.wait(SWEEP_INTERVAL_S):
            try:
                removed = self.media.sweep()
                if removed:
                    log.info("sweeper removed %d expired or orphaned media objects", removed)
            except Exception:
                log.exception("media sweep failed")
