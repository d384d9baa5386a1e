// FaceCraftUnreal.h - calling FaceCraft's gRPC service from Unreal Engine (C++), and converting
// its answer to Unreal's frame. Example code: it compiles against the C++ stubs that protoc and
// grpc_cpp_plugin generate from proto/facecraft/v1/facecraft.proto (see README.md).
//
// FaceCraft: right-handed, +Y up, the face looks down +Z (towards its camera), +X on the
// subject's left, metres, triangles counter-clockwise seen from outside, UV origin bottom-left.
// Unreal:    left-handed, +Z up, +X forward, +Y right, centimetres, UV origin top-left.

#pragma once

#include "CoreMinimal.h"

#include <memory>
#include <string>

THIRD_PARTY_INCLUDES_START
#include <grpcpp/grpcpp.h>
#include "facecraft/v1/facecraft.grpc.pb.h"
THIRD_PARTY_INCLUDES_END

class UProceduralMeshComponent;
class UTexture2D;

namespace FaceCraftUE
{
	/** A FaceCraft mesh in Unreal's frame, split at UV seams (one UV per vertex). */
	struct FFaceCraftMesh
	{
		TArray<FVector> Vertices;   // centimetres
		TArray<FVector> Normals;
		TArray<FVector2D> UV0;      // origin top-left
		TArray<int32> Triangles;
	};

	/** FaceCraft (x, y, z) metres -> Unreal (X forward, Y right, Z up) centimetres:
	 *  forward = the face's +Z, right = the subject's right = -X, up = +Y. */
	inline FVector ToUnrealPoint(float X, float Y, float Z, double Scale = 100.0)
	{
		return FVector(Scale * Z, -Scale * X, Scale * Y);
	}

	/** Vertices, normals, UVs and triangles of a reconstructed face in Unreal's frame. */
	FFaceCraftMesh ToUnrealMesh(const facecraft::v1::Mesh& Mesh);

	/** The head's rotation (FaceCraft's R: model axes -> world) as an Unreal quaternion. */
	FQuat ToUnrealRotation(const facecraft::v1::Pose& Pose);

	/** The head's translation in centimetres. */
	FVector ToUnrealTranslation(const facecraft::v1::Pose& Pose);

	/** The PNG texture as a transient sRGB UTexture2D (game thread). */
	UTexture2D* TextureFromPng(const std::string& Png);

	/** Fill section 0 of a procedural mesh component (game thread). */
	void ApplyToProceduralMesh(UProceduralMeshComponent* Component, const FFaceCraftMesh& Mesh);

	/** A blocking connection: call it from a worker thread (AsyncTask), never the game thread. */
	class FFaceCraftConnection
	{
	public:
		/** Target "host:port"; an empty RootCertsPem means plaintext (the server's default). */
		FFaceCraftConnection(const std::string& Target, const std::string& Token = "",
		                     const std::string& RootCertsPem = "");

		/** Reconstruct the largest face of a photo file's bytes. On failure returns false and sets
		 *  Error to "CODE: message" (FAILED_PRECONDITION: no face; INVALID_ARGUMENT: not a usable
		 *  photo; RESOURCE_EXHAUSTED: too large; UNAVAILABLE: no server). */
		bool Reconstruct(const TArray<uint8>& Photo, uint32 TextureSize,
		                 facecraft::v1::ReconstructResponse& Out, FString& Error) const;

		bool GetModelInfo(facecraft::v1::ModelInfo& Out, FString& Error) const;

	private:
		std::shared_ptr<grpc::Channel> Channel;
		std::unique_ptr<facecraft::v1::FaceCraft::Stub> Stub;
		std::string Token;

		void Prepare(grpc::ClientContext& Context, int Seconds) const;
	};
}
