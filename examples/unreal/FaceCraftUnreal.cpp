// FaceCraftUnreal.cpp - see FaceCraftUnreal.h and README.md.

#include "FaceCraftUnreal.h"

#include "Engine/Texture2D.h"
#include "IImageWrapper.h"
#include "IImageWrapperModule.h"
#include "Modules/ModuleManager.h"
#include "ProceduralMeshComponent.h"

#include <chrono>

namespace FaceCraftUE
{
	FFaceCraftMesh ToUnrealMesh(const facecraft::v1::Mesh& M)
	{
		check(M.triangles_size() > 0 && M.uv_triangles_size() == M.triangles_size());
		const bool bNormals = M.normals_size() == M.vertices_size();
		FFaceCraftMesh Out;
		TMap<uint64, int32> Corner;  // (vertex, uv) pair -> Unreal vertex
		Out.Triangles.Reserve(M.triangles_size());
		for (int I = 0; I < M.triangles_size(); ++I)
		{
			const uint32 V = M.triangles(I);
			const uint32 T = M.uv_triangles(I);
			const uint64 Key = (uint64(V) << 32) | T;
			int32* Found = Corner.Find(Key);
			int32 Index;
			if (Found)
			{
				Index = *Found;
			}
			else
			{
				Index = Out.Vertices.Add(ToUnrealPoint(M.vertices(3 * V), M.vertices(3 * V + 1), M.vertices(3 * V + 2)));
				if (bNormals)
				{
					Out.Normals.Add(ToUnrealPoint(M.normals(3 * V), M.normals(3 * V + 1), M.normals(3 * V + 2), 1.0));
				}
				Out.UV0.Add(FVector2D(M.uvs(2 * T), 1.0f - M.uvs(2 * T + 1)));  // V flips: top-left origin
				Corner.Add(Key, Index);
			}
			// Triangle order is kept: the axis change is a proper physical re-labelling, so a
			// triangle counter-clockwise from outside stays counter-clockwise on screen, which
			// is Unreal's front face (FBX imports keep the order for the same reason). If your
			// actor has a negative (mirroring) scale, reverse each triangle instead.
			Out.Triangles.Add(Index);
		}
		return Out;
	}

	FQuat ToUnrealRotation(const facecraft::v1::Pose& P)
	{
		// Column k of the row-major R is model axis k in FaceCraft's world. The mesh's forward
		// (FaceCraft +Z) is Unreal's X axis and its up (FaceCraft +Y) is Unreal's Z axis.
		const FVector Forward = ToUnrealPoint(P.rotation(2), P.rotation(5), P.rotation(8), 1.0);
		const FVector Up = ToUnrealPoint(P.rotation(1), P.rotation(4), P.rotation(7), 1.0);
		return FRotationMatrix::MakeFromXZ(Forward, Up).ToQuat();
	}

	FVector ToUnrealTranslation(const facecraft::v1::Pose& P)
	{
		return ToUnrealPoint(P.translation(0), P.translation(1), P.translation(2));
	}

	UTexture2D* TextureFromPng(const std::string& Png)
	{
		IImageWrapperModule& Module = FModuleManager::LoadModuleChecked<IImageWrapperModule>(FName("ImageWrapper"));
		TSharedPtr<IImageWrapper> Wrapper = Module.CreateImageWrapper(EImageFormat::PNG);
		TArray<uint8> Raw;
		if (!Wrapper.IsValid() || !Wrapper->SetCompressed(Png.data(), Png.size()) ||
		    !Wrapper->GetRaw(ERGBFormat::BGRA, 8, Raw))
		{
			return nullptr;
		}
		UTexture2D* Texture = UTexture2D::CreateTransient(Wrapper->GetWidth(), Wrapper->GetHeight(), PF_B8G8R8A8);
		Texture->SRGB = true;  // FaceCraft's colours are sRGB-encoded
		void* Mip = Texture->GetPlatformData()->Mips[0].BulkData.Lock(LOCK_READ_WRITE);
		FMemory::Memcpy(Mip, Raw.GetData(), Raw.Num());
		Texture->GetPlatformData()->Mips[0].BulkData.Unlock();
		Texture->UpdateResource();
		return Texture;
	}

	void ApplyToProceduralMesh(UProceduralMeshComponent* Component, const FFaceCraftMesh& Mesh)
	{
		Component->CreateMeshSection_LinearColor(0, Mesh.Vertices, Mesh.Triangles, Mesh.Normals, Mesh.UV0,
		                                          TArray<FLinearColor>(), TArray<FProcMeshTangent>(),
		                                          /*bCreateCollision=*/false);
	}

	FFaceCraftConnection::FFaceCraftConnection(const std::string& Target, const std::string& InToken,
	                                           const std::string& RootCertsPem)
		: Token(InToken)
	{
		grpc::ChannelArguments Args;
		Args.SetMaxReceiveMessageSize(64 * 1024 * 1024);  // a textured mesh is a few MiB
		Args.SetMaxSendMessageSize(64 * 1024 * 1024);
		std::shared_ptr<grpc::ChannelCredentials> Credentials;
		if (RootCertsPem.empty())
		{
			Credentials = grpc::InsecureChannelCredentials();
		}
		else
		{
			grpc::SslCredentialsOptions Ssl;
			Ssl.pem_root_certs = RootCertsPem;
			Credentials = grpc::SslCredentials(Ssl);
		}
		Channel = grpc::CreateCustomChannel(Target, Credentials, Args);
		Stub = facecraft::v1::FaceCraft::NewStub(Channel);
	}

	void FFaceCraftConnection::Prepare(grpc::ClientContext& Context, int Seconds) const
	{
		Context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(Seconds));
		if (!Token.empty())
		{
			Context.AddMetadata("authorization", "Bearer " + Token);
		}
	}

	static FString Describe(const grpc::Status& Status)
	{
		return FString::Printf(TEXT("%d: %s"), int(Status.error_code()), UTF8_TO_TCHAR(Status.error_message().c_str()));
	}

	bool FFaceCraftConnection::Reconstruct(const TArray<uint8>& Photo, uint32 TextureSize,
	                                       facecraft::v1::ReconstructResponse& Out, FString& Error) const
	{
		facecraft::v1::ReconstructRequest Request;
		Request.set_photo(reinterpret_cast<const char*>(Photo.GetData()), Photo.Num());
		Request.mutable_options()->set_faces(facecraft::v1::FACE_SELECTION_LARGEST);
		Request.mutable_options()->set_texture(true);
		Request.mutable_options()->set_texture_size(TextureSize);
		grpc::ClientContext Context;
		Prepare(Context, 60);
		const grpc::Status Status = Stub->Reconstruct(&Context, Request, &Out);
		if (!Status.ok())
		{
			Error = Describe(Status);
			return false;
		}
		return true;
	}

	bool FFaceCraftConnection::GetModelInfo(facecraft::v1::ModelInfo& Out, FString& Error) const
	{
		grpc::ClientContext Context;
		Prepare(Context, 10);
		const grpc::Status Status = Stub->GetModelInfo(&Context, facecraft::v1::GetModelInfoRequest(), &Out);
		if (!Status.ok())
		{
			Error = Describe(Status);
			return false;
		}
		return true;
	}
}
